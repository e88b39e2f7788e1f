"""Plain words for the error codes a message can end with (Twilio's, and our own)."""

from __future__ import annotations

OPTED_OUT_CODE = "21610"

_DESCRIPTIONS = {
    "20003": "Twilio rejected the account credentials",
    "20429": "Twilio is rate limiting requests (too many requests)",
    "20500": "Twilio had an internal error",
    "21211": "The 'To' number is not a valid phone number",
    "21408": "Sending to this region is not enabled",
    "21602": "Message body is required",
    "21606": "The 'From' number cannot send this message",
    "21608": "The 'To' number is not verified (trial account)",
    OPTED_OUT_CODE: "The recipient has replied STOP (unsubscribed)",
    "21612": "Twilio cannot route to this number",
    "21614": "The 'To' number cannot receive SMS",
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "30008": "Unknown error",
    "timeout": "Twilio did not answer in time; the message may not have been sent",
    "network_error": "Twilio could not be reached",
    "gateway_error": "The message could not be handed to Twilio",
}


def describe(code: str | None) -> str | None:
    if code is None:
        return None
    if code in _DESCRIPTIONS:
        return _DESCRIPTIONS[code]
    if code.isdigit() and 500 <= int(code) < 600:
        return f"Twilio answered with HTTP {code}"
    return None
