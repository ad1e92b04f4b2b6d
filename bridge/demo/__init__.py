"""Local servers for the demo and the integration tests, and the `muc-bridge demo` command."""
