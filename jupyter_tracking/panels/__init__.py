"""Views: the run card (card.py), the live panel (live.py) and the comparison panel (compare.py). Panels only read."""
