"""SUN / MSUN: stable (or metastable), unique and novel."""
