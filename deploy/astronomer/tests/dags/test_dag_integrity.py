"""`astro dev pytest` (and `astro deploy`'s parse check) for the plg-bridge Astro project.

Laid out by `python deploy/package.py astronomer OUT` as OUT/tests/dags/test_dag_integrity.py; runs
inside the Runtime image, where the project lives in $AIRFLOW_HOME (/usr/local/airflow).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME = Path(os.environ.get("AIRFLOW_HOME", "/usr/local/airflow"))


def test_dags_import_without_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(HOME / "dags"))
    assert bag.import_errors == {}
    assert "plg_reverse_etl" in bag.dags


def test_package_and_settings_come_from_the_project():
    import plg_bridge
    from plg_bridge.config import default_config_path, load_settings

    assert Path(plg_bridge.__file__).resolve().is_relative_to((HOME / "plugins").resolve())
    assert default_config_path() == (HOME / "include" / "config" / "plg_bridge.yaml").resolve()
    load_settings()


def test_plugins_folder_ignores_the_package():
    ignore = (HOME / "plugins" / ".airflowignore").read_text().split()
    assert "plg_bridge/" in ignore
