"""The Slack destination: client (transport), mapping (pure), targets (what the engine runs)."""
