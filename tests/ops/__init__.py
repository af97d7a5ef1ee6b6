"""Operations: the demo, the local Airflow UI (headless Chromium), docker-compose."""
