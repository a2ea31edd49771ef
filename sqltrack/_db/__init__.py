"""The database: configuration, the client, the schema scripts, one module per engine."""
