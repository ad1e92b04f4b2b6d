import structlog
from structlog.testing import capture_logs

from bridge.silc.keyguard import LOG_EVERY, KeyGuard


def guard(clock):
    return KeyGuard("silcnet", "hackers", structlog.get_logger(), clock=lambda: clock[0])


def test_unreadable_messages_are_counted_logged_at_most_once_a_minute_and_told_once():
    clock = [1000.0]
    with capture_logs() as logs:
        g = guard(clock)
        told = [g.not_readable(server_key=False) for _ in range(3)]
        clock[0] += LOG_EVERY
        told.append(g.not_readable(server_key=False))
    assert told[0] is not None and "cannot be read with the configured passphrase" in told[0]
    assert told[1:] == [None, None, None]
    assert [(e["event"], e["total"], e["room"]) for e in logs] == [
        ("silc_message_unreadable", 1, "hackers"),
        ("silc_message_unreadable", 4, "hackers"),
    ]
    assert g.unreadable == 4


def test_messages_under_the_server_key_are_counted_not_told():
    clock = [0.0]
    with capture_logs() as logs:
        g = guard(clock)
        assert g.not_readable(server_key=True) is None
    assert [e["event"] for e in logs] == ["silc_message_under_server_key_dropped"]
    assert g.under_server_key == 1 and g.unreadable == 0


def test_pause_and_resume_say_why_and_what_was_missed():
    clock = [0.0]
    with capture_logs() as logs:
        g = guard(clock)
        g.hold_back()  # before the pause: not counted in it
        paused = g.paused("the channel lacks the private-key mode (+k)")
        g.hold_back()
        g.not_readable(server_key=True)
        g.not_readable(server_key=True)
        resumed = g.resumed()
    assert paused.startswith("muc-bridge: relaying with SILC channel hackers on silcnet is paused: the")
    assert resumed.endswith("3 messages were not relayed meanwhile.")
    events = {e["event"]: e for e in logs}
    assert events["silc_relay_paused"]["log_level"] == "warning"
    resumed_log = events["silc_relay_resumed"]
    assert (resumed_log["held_back"], resumed_log["dropped_from_silc"]) == (1, 2)
