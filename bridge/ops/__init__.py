"""Operating the bridge: what admins see and do (status, security report, reconnects,
puppets), the chat with the component, metrics and the health check."""
