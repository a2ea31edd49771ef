"""The read side: metrics back, finding and comparing runs, the report, plots.

It never imports the live run (:mod:`sqltrack._live`).
"""
