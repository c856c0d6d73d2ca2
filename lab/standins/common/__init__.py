"""Code shared by the lab's vendor stand-ins."""
