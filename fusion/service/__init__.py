"""``fusion serve``: the HTTP service an app backend uploads diary recordings to.

Modules: ``app`` (the FastAPI app, its routes and upload checks, ``serve``), ``jobs`` (analyses
run on worker threads sharing one set of models), ``store`` (users, analyses and reports in any
SQLAlchemy database).
"""
