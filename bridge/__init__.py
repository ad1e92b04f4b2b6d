"""muc-bridge: relay XMPP MUC rooms, IRC channels and SILC channels."""

__version__ = "0.1.0"
