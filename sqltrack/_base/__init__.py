"""Pure checks and conversions: names, values, one metrics call, secrets; no database."""
