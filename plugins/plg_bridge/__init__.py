"""plg-bridge: batch reverse-ETL of PLG signals from PostHog exports."""

__version__ = "0.1.0"
