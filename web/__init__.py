"""The GitHub application's web layer: its read API (`web.api`) and its pages (`web.pages`)."""
