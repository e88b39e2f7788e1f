/*
 * Counts the event frames arriving on websockets that a benchmark client has already opened
 * and subscribed (bench/common.py hands their file descriptors over), at a few microseconds
 * of CPU per read where a Python client costs tens.
 *
 * The fan-out benchmark's clients share the machine with the servers being measured: with
 * clients in Python, a thousand of them took as much CPU as the server and the box ran out
 * before one server process did. This leaves the cores to the servers.
 *
 *     frame_counter MARKER PING PONG FD...
 *
 * A text or binary frame whose payload contains MARKER is an event: it is counted and its
 * arrival time kept (CLOCK_MONOTONIC, the clock of Python's time.monotonic()). A text frame
 * that is exactly PING is answered with the text frame PONG (Engine.IO's "2" and "3"; give
 * empty strings for none); websocket pings get pongs; a close frame closes the socket.
 * Server frames are never masked or fragmented (neither server fragments; no compression).
 *
 * On stdin, one command per line: "c" prints "FRAMES FIRST LAST OPEN ERRORS" (times in
 * seconds, 0 before the first event) and "q" exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE 65536

struct client {
    int fd;
    unsigned char *buffer;
    size_t length, capacity;
};

static const char *marker, *ping, *pong;
static size_t marker_length, ping_length, pong_length;
static unsigned long long frames, errors;
static double first_frame, last_frame;
static int open_sockets;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A client frame must be masked; a zero key leaves the payload as it is. */
static void send_frame(struct client *c, unsigned char opcode, const void *payload, size_t n) {
    unsigned char frame[2 + 4 + 125];
    if (n > 125) n = 125;
    frame[0] = 0x80 | opcode;
    frame[1] = 0x80 | (unsigned char)n;
    memset(frame + 2, 0, 4);
    memcpy(frame + 6, payload, n);
    if (send(c->fd, frame, 6 + n, MSG_NOSIGNAL) != (ssize_t)(6 + n)) errors++;
}

static void close_client(int epoll, struct client *c) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    open_sockets--;
}

/* Consumes the whole frames at the start of the buffer; returns 0 once the socket closed. */
static int split_frames(int epoll, struct client *c) {
    size_t at = 0;
    while (c->length - at >= 2) {
        unsigned char *head = c->buffer + at;
        unsigned char opcode = head[0] & 0x0F;
        uint64_t length = head[1] & 0x7F;
        size_t start = 2;
        if (length == 126) {
            if (c->length - at < 4) break;
            length = ((uint64_t)head[2] << 8) | head[3];
            start = 4;
        } else if (length == 127) {
            if (c->length - at < 10) break;
            length = 0;
            for (int i = 2; i < 10; i++) length = (length << 8) | head[i];
            start = 10;
        }
        if (start + length > c->length - at) {
            if (start + length > c->capacity) {
                c->capacity = start + length + READ_SIZE;
                c->buffer = realloc(c->buffer, c->capacity);
                if (!c->buffer) abort();
            }
            break;
        }
        unsigned char *payload = c->buffer + at + start;
        if (opcode == 0x1 || opcode == 0x2) {
            if (memmem(payload, length, marker, marker_length)) {
                double t = now();
                if (!frames) first_frame = t;
                last_frame = t;
                frames++;
            } else if (opcode == 0x1 && ping_length && length == ping_length &&
                       !memcmp(payload, ping, ping_length)) {
                send_frame(c, 0x1, pong, pong_length);
            }
        } else if (opcode == 0x9) {
            send_frame(c, 0xA, payload, length);
        } else if (opcode == 0x8) {
            send_frame(c, 0x8, payload, length < 2 ? length : 2);
            close_client(epoll, c);
            return 0;
        }
        at += start + length;
    }
    memmove(c->buffer, c->buffer + at, c->length - at);
    c->length -= at;
    return 1;
}

static void read_client(int epoll, struct client *c) {
    if (c->capacity - c->length < READ_SIZE) {
        c->capacity = c->length + READ_SIZE;
        c->buffer = realloc(c->buffer, c->capacity);
        if (!c->buffer) abort();
    }
    ssize_t n = recv(c->fd, c->buffer + c->length, c->capacity - c->length, MSG_DONTWAIT);
    if (n > 0) {
        c->length += (size_t)n;
        split_frames(epoll, c);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_client(epoll, c);
    }
}

/* Returns 0 when told to quit (or stdin closed). */
static int command(void) {
    char line[64];
    if (!fgets(line, sizeof line, stdin) || line[0] == 'q') return 0;
    if (line[0] == 'c') {
        printf("%llu %.9f %.9f %d %llu\n", frames, first_frame, last_frame, open_sockets, errors);
        fflush(stdout);
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MARKER PING PONG FD...\n", argv[0]);
        return 2;
    }
    marker = argv[1], ping = argv[2], pong = argv[3];
    marker_length = strlen(marker), ping_length = strlen(ping), pong_length = strlen(pong);
    int count = argc - 4;
    struct client *clients = calloc((size_t)count + 1, sizeof *clients);
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN};
    event.data.ptr = NULL; /* stdin */
    if (!clients || epoll < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, 0, &event) < 0) return 1;
    for (int i = 0; i < count; i++) {
        clients[i].fd = atoi(argv[4 + i]);
        event.data.ptr = &clients[i];
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, clients[i].fd, &event) < 0) {
            perror("epoll_ctl");
            return 1;
        }
        open_sockets++;
    }
    struct epoll_event ready[256];
    for (;;) {
        int n = epoll_wait(epoll, ready, 256, -1);
        if (n < 0 && errno != EINTR) return 1;
        for (int i = 0; i < n; i++) {
            struct client *c = ready[i].data.ptr;
            if (!c) {
                if (!command()) return 0;
            } else if (c->fd >= 0) {
                read_client(epoll, c);
            }
        }
    }
}
