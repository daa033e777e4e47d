"""Findings tables, one module per who raises the codes; settings_app.diagnosis picks among them."""
