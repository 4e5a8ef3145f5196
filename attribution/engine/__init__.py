"""Attribution engines: plain Python, never import Django (retrieval, influence, spans, chain)."""
