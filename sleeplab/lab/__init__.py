"""The lab: measurements and probes that notebooks and readers run on models and checkpoints."""
