"""Supply risk: Herfindahl-Hirschman index of element production and reserves."""
