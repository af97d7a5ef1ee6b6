# The project's image for docker-compose.yaml: every Airflow component, the workers and the simulators.
#
# Based on the official Airflow image of the version requirements.txt pins (it already carries what the
# compose layout needs beyond the project: the Celery executor, Redis and Postgres clients). The project
# is installed exactly as on a laptop: `pip install -r requirements.txt` (the same pins), then the
# project itself in editable mode from /opt/iwh, where its DAGs, dbt project and simulators live.
#
#   docker compose build            # or: docker build -t invoice-warehouse .
FROM apache/airflow:3.3.2-python3.11

ENV IWH_HOME=/opt/iwh \
    IWH_DATA_DIR=/opt/iwh/data \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/iwh/dags \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    PIP_NO_CACHE_DIR=1

USER root
RUN mkdir -p /opt/iwh/data /opt/airflow/auth && chown -R airflow:0 /opt/iwh /opt/airflow/auth
USER airflow
WORKDIR /opt/iwh

# Dependencies first (a layer that changes only with requirements.txt).
COPY --chown=airflow:0 requirements.txt /opt/iwh/requirements.txt
RUN pip install -r /opt/iwh/requirements.txt

# Then the project (the layer every code change rebuilds).
COPY --chown=airflow:0 . /opt/iwh
RUN pip install --no-deps -e /opt/iwh \
    && python -c "import invoice_warehouse.registry, simulators.server" \
    && mkdir -p /opt/iwh/data
