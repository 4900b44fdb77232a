"""Deployment without docker: supervisord config generator (supervisord.py) and its program launcher."""
