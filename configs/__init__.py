"""Run configs: one ml_collections ConfigDict per run (see configs/base.py for the schema).

configs/cli.py holds the command line's one table of named flags (the original tensorflow/tpu names) and the
rule that turns parsed flags into a config; every other field is overridden as --config.section.field=value.
"""
