"""Words people read for the codes the system keeps: delivery statuses and Twilio errors.

The pages render these on the server and hand the same tables to the browser script, so a
status that changes live reads exactly like one rendered with the page.
"""

from __future__ import annotations

from typing import Any

STATUS_WORDS: dict[str, str] = {
    "received": "Received",
    "sending": "Sending…",
    "accepted": "Accepted",
    "scheduled": "Scheduled",
    "queued": "Queued",
    "sent": "Sent",
    "delivered": "Delivered",
    "undelivered": "Not delivered",
    "failed": "Failed",
    "partially_delivered": "Partly delivered",
    "canceled": "Canceled",
    "read": "Read",
    "unknown": "Unknown — may not have gone out",
}

# Statuses after which nothing good will happen: shown in red with the error in words.
PROBLEM_STATUSES = frozenset({"failed", "undelivered", "canceled", "unknown"})

# How a status is drawn: a clock, one tick, two ticks, or a warning sign.
STATUS_KINDS: dict[str, str] = {
    "sending": "pending",
    "accepted": "pending",
    "scheduled": "pending",
    "queued": "pending",
    "sent": "sent",
    "delivered": "delivered",
    "partially_delivered": "delivered",
    "read": "delivered",
    **{status: "problem" for status in PROBLEM_STATUSES},
}

# Twilio's error codes (https://www.twilio.com/docs/api/errors) as a person would say them.
ERROR_WORDS: dict[str, str] = {
    "20003": "Twilio refused the account credentials",
    "20429": "Twilio is rate limiting us; try again shortly",
    "21211": "This is not a valid phone number",
    "21408": "Sending to this country or region is not enabled",
    "21610": "The contact has opted out (replied STOP)",
    "21612": "This number cannot be reached from our number",
    "21614": "This number cannot receive text messages",
    "21617": "The message is too long",
    "30001": "Twilio's queue overflowed",
    "30002": "The Twilio account is suspended",
    "30003": "The phone is off or out of reach",
    "30004": "The message was blocked",
    "30005": "This number does not exist or is no longer in service",
    "30006": "This is a landline or the carrier cannot be reached",
    "30007": "The carrier filtered the message as spam",
    "30008": "The carrier reported an unknown error",
    "30010": "The message cost more than the allowed maximum",
    "30034": "Our sending number is not registered for business texting (A2P 10DLC)",
    "timeout": "Twilio did not answer in time",
    "network": "Twilio could not be reached",
}


def status_words(status: str | None) -> str:
    if not status:
        return ""
    return STATUS_WORDS.get(status, status.replace("_", " ").capitalize())


def status_kind(status: str | None) -> str:
    return STATUS_KINDS.get(status or "", "pending")


def error_words(code: str | int | None, message: str | None = None) -> str:
    """`code` in words, e.g. "This number cannot receive text messages (error 21614)"."""
    if code is None or code == "":
        return message or ""
    text = ERROR_WORDS.get(str(code)) or message or "Twilio reported an error"
    return f"{text} (error {code})"


TAG_WORDS: dict[str, str] = {
    "campaign": "Campaign",
    "quick": "Quick Message",
    "inbound": "",
}


def browser_tables() -> dict[str, Any]:
    """The same tables for the browser script (embedded in the page as JSON)."""
    return {
        "status": STATUS_WORDS,
        "kinds": STATUS_KINDS,
        "errors": ERROR_WORDS,
        "tags": TAG_WORDS,
    }
