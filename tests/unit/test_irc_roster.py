"""Channel membership and accounts, folded by the network's case mapping."""

from bridge.irc.roster import Roster


def test_rfc1459_folding_by_default_and_ascii_when_told():
    r = Roster()
    assert r.fold("Nick[]\\~") == "nick{}|^"
    r.set_casemapping("ascii")
    assert r.fold("Nick[]\\~") == "nick[]\\~"


def test_quit_and_rename_report_the_users_channels():
    r = Roster()
    r.joined("#A", "Alice")
    r.joined("#b", "alice")
    r.joined("#b", "bob")
    assert sorted(r.rename("ALICE", "Alicia")) == ["#a", "#b"]
    assert r.channels_of("alice") == []
    assert sorted(r.quit("alicia")) == ["#a", "#b"]
    assert r.quit("alicia") == []
    assert r.channels_of("bob") == ["#b"]


def test_accounts_follow_renames_and_are_forgotten_with_the_user():
    r = Roster()
    r.joined("#a", "alice")
    r.set_account("alice", "acct")
    r.rename("alice", "alicia")
    assert r.account("ALICIA") == "acct"
    r.left("#a", "alicia")
    assert r.account("alicia") is None


def test_star_means_logged_out_and_strangers_are_not_remembered():
    r = Roster()
    r.joined("#a", "alice")
    r.set_account("alice", "acct")
    r.set_account("alice", "*")
    assert r.account("alice") is None
    r.set_account("stranger", "acct")  # in none of our channels: not kept
    assert r.account("stranger") is None


def test_we_leave_a_channel_and_forget_who_was_only_there():
    r = Roster()
    r.joined("#a", "alice")
    r.joined("#b", "bob")
    r.set_account("alice", "acct")
    r.drop("#a")
    assert r.channels_of("alice") == [] and r.account("alice") is None
    r.reset("#b")
    assert r.channels_of("bob") == []


def test_ops_and_voice_follow_mode_changes_renames_and_departures():
    from bridge.irc.roster import Roster
    roster = Roster()
    roster.joined("#a", "Bob")
    assert roster.set_mode("#a", "bob", "v", True) == "voice"
    assert roster.set_mode("#A", "BOB", "o", True) == "op"
    assert roster.set_mode("#a", "bob", "o", False) == "voice"  # still voiced
    roster.rename("bob", "robert")
    assert roster.rank("#a", "robert") == "voice" and roster.rank("#a", "bob") == ""
    roster.left("#a", "robert")
    roster.joined("#a", "robert")
    assert roster.rank("#a", "robert") == ""
    assert roster.set_mode("#a", "nobody", "o", True) == ""  # not in the channel: nothing kept
    roster.set_mode("#a", "robert", "o", True)
    roster.quit("robert")
    assert roster.rank("#a", "robert") == ""
