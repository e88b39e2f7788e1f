"""The staff and admin pages: Jinja2 templates and static files, shipped with the package."""
