"""Comment templates and use-case scaffolds (data files, rendered with Jinja2)."""
