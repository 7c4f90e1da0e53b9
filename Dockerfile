# syntax=docker/dockerfile:1
#
# Images for docker-compose.yaml (see docs/deployment.md). Two targets:
#
#   airflow        (the last stage, so the default) Apache Airflow with the project's pinned
#                  requirements and dags/ plugins/ include/ baked in; every Airflow service runs it.
#   demo-services  a small Python image with moto server (a local S3) and the fake vendor APIs
#                  (tests/fakes); only the `demo` profile runs it, so the Airflow image carries no
#                  test code.
#
# AIRFLOW_VERSION must equal the apache-airflow pin in requirements.txt and PYTHON_VERSION the Python
# that constraints.txt was resolved on (tests/deploy/test_compose.py checks both).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11

# -- demo-services: moto + fake HubSpot / Salesforce / Intercom / Slack ------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS demo-services
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/plg-bridge
COPY constraints.txt /tmp/constraints.txt
# What `python -m tests.fakes.<vendor>` and `python -m moto.server` import, at the project's pins.
RUN pip install --no-cache-dir -c /tmp/constraints.txt \
        "moto[server]" pyyaml jsonschema referencing openapi-core werkzeug \
    && rm /tmp/constraints.txt
COPY tests/__init__.py tests/__init__.py
COPY tests/fakes/ tests/fakes/
USER nobody

# -- airflow: the image of every Airflow service -----------------------------------------------------
FROM apache/airflow:slim-${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS airflow
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
USER root
# `plg-bridge ...` for on-call inside any container (`docker compose exec airflow-worker plg-bridge ...`);
# the package itself is not pip-installed: plugins/ is on sys.path, as on every Airflow deployment.
RUN mkdir -p /opt/plg-bridge/bin /opt/airflow/auth \
    && printf '#!/bin/sh\nexec python -m plg_bridge.cli "$@"\n' > /opt/plg-bridge/bin/plg-bridge \
    && chmod 0755 /opt/plg-bridge/bin/plg-bridge \
    && chown -R airflow:0 /opt/airflow/auth && chmod 0770 /opt/airflow/auth
ENV PATH="/opt/plg-bridge/bin:${PATH}" \
    PYTHONPATH="/opt/airflow/plugins"
USER airflow
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/plg-bridge/
# requirements.txt pins apache-airflow itself, so pip cannot move Airflow; the Celery executor, the
# Postgres drivers (sync + async) and the Redis client are what this topology adds.
RUN pip install --no-cache-dir -r /opt/plg-bridge/requirements.txt -c /opt/plg-bridge/constraints.txt \
        apache-airflow-providers-celery psycopg2-binary asyncpg redis
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 scripts/create_pools.py /opt/airflow/scripts/create_pools.py
COPY --chown=airflow:0 deploy/docker/demo_flow.py /opt/plg-bridge/demo_flow.py
