"""Optional integrations with third-party packages."""
