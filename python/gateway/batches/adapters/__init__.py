"""The providers' batch APIs behind one small interface (base.py), one module per API."""
