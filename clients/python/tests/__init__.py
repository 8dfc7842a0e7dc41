"""Tests of the keyport-client package against a live keyport server."""
