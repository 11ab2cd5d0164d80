"""
Prometheus metrics of one worker, served at ``GET /metrics``: live state read at scrape
time (``collector``), event counters and histograms bumped where the events happen
(``families``), and who may scrape them (``access``, ``views``).
"""
