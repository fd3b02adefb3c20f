"""One thin module per forge event or merge request command (arrives with the webhook service)."""
