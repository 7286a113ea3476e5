"""Messages live here; the routing issue fills this app in."""
