"""The curated example schema (schema.pbtxt), used through ImportSchemaGen."""
import os

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'schema.pbtxt')
