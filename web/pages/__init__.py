"""The web pages people read: server-rendered HTML over the precomputed tables."""
