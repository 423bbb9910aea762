"""The report of a run: report.json, report.html (tables, figures, differences between arms, the
generator table) and the claims tables README.md and docs/ show.
"""
