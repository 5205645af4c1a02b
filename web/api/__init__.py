"""The read API: every answer comes from precomputed tables by indexed lookups.

`web.api.app.create_app` builds the application; this package import stays light,
so the pipelines can share the API's read functions without importing the web app.
"""
