"""``fusion serve``: the HTTP service an app backend uploads diary recordings to (``pip install 'fusion[serve]'``).

Modules: ``app`` (the FastAPI app: lifespan, upload gate, docs page; ``serve``), ``routes`` (the endpoints
and their upload checks), ``schemas`` (the response bodies), ``jobs`` (analyses run on worker threads sharing
one set of models), ``store`` (users, analyses and reports in any SQLAlchemy database; ``sqlite``: what it
does for SQLite alone) and ``cli`` (the ``fusion serve`` commands).
"""
