"""Identity shared by the sync protocol and the REST API: JWT issue and verification."""
