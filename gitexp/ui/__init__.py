"""`gitexp ui` (a local web app over the runs) and `gitexp report` (one self-contained HTML file).

views.py builds every JSON payload from gitexp's one read path (query, filter, grouping, compare, lineage,
series, logs, get); server.py serves them with Starlette + uvicorn; report.py inlines the same payloads and
the front end (static/) into one file. Needs the `ui` extra: pip install 'gitexp[ui]'.
docs/ui.md is the guide; /work/wt/ui_contract.md-style contract: docs/ui.md "Endpoints".
"""
