"""Source helpers (layer 2): what several format readers need, written once."""
