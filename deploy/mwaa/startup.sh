#!/bin/sh
# Amazon MWAA startup script (the environment's StartupScriptS3Path), run before every Airflow
# component starts. Laid out by `python deploy/package.py mwaa OUT` as OUT/startup.sh.
#
# MWAA syncs only the S3 dags/ folder (to /usr/local/airflow/dags): include/ travels inside it, so
# tell the package where its configuration is.
export PLG_BRIDGE_CONFIG="/usr/local/airflow/dags/include/config/plg_bridge.yaml"

# Deployment settings: any PLG_BRIDGE__<SECTION>__<KEY> overrides the YAML (docs/configuration.md).
# export PLG_BRIDGE__EXPORTS__LOCATION="s3://acme-posthog/exports"
# export PLG_BRIDGE__WORK_LOCATION="s3://acme-plg-bridge/work"
