"""One module per provider: its declarative SPEC and its thin Hook."""
