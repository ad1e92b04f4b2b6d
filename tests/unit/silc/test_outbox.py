from bridge.silc.outbox import Outbox


def test_a_barrier_confirms_what_was_sent_before_it():
    box = Outbox()
    box.sent("Hackers", 0, b"one")
    box.sent("hackers", 0, b"two")
    assert box.pending.is_set()
    upto = box.last
    box.sent("hackers", 0, b"three")  # after the PING went out
    box.confirmed(upto)
    assert len(box) == 1
    box.connection_lost()
    assert [u.data for u in box.to_resend("HACKERS")] == [b"three"]


def test_unconfirmed_messages_are_resent_once_per_channel_then_given_up():
    box = Outbox()
    box.sent("hackers", 0, b"a")
    box.sent("other", 0, b"b")
    box.connection_lost()
    assert not box.pending.is_set()
    again = box.to_resend("hackers")
    assert [u.data for u in again] == [b"a"] and box.to_resend("hackers") == []
    box.sent("hackers", 0, b"a", tries=again[0].tries + 1)  # lost again with the next connection
    box.connection_lost()
    assert box.to_resend("hackers") == [] and box.given_up == 1
    assert [u.data for u in box.to_resend("other")] == [b"b"]
    assert len(box) == 0


def test_a_message_for_a_connection_that_is_gone_waits_for_the_rejoin():
    box = Outbox()
    box.sent("hackers", 0, b"late", live=False)
    assert not box.pending.is_set()
    box.confirmed(box.last)  # a barrier on the new connection does not cover it
    assert [u.data for u in box.to_resend("hackers")] == [b"late"]


def test_the_window_is_bounded_oldest_given_up_first():
    box = Outbox(size=3)
    for n in range(5):
        box.sent("hackers", 0, bytes([n]))
    box.connection_lost()
    assert [u.data for u in box.to_resend("hackers")] == [b"\x02", b"\x03", b"\x04"]
    assert box.given_up == 2
