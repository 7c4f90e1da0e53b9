"""Import a packaged copy of plg-bridge the way an Airflow deployment does; print what happened (JSON).

Run by test_packaging.py as `python -P platform_probe.py REPO OUT.json` in a clean environment that holds
only what the platform sets: AIRFLOW_HOME, AIRFLOW__CORE__DAGS_FOLDER, AIRFLOW__CORE__PLUGINS_FOLDER
and the platform's own variables (PLG_BRIDGE_CONFIG on MWAA and Composer). Nothing of the checkout
may be importable: the venv's editable install of plg-bridge adds the checkout's plugins/ to
sys.path through a .pth file, which no platform has, so those entries are dropped first. Airflow
itself then adds the plugins folder (settings) and the dags folder (BundleDagBag, as the
dag-processor and the task runner do), which is all a platform puts on sys.path.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _under(path: str | os.PathLike[str], root: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(root)
    except (OSError, ValueError):
        return False


def main() -> int:
    repo = Path(sys.argv[1]).resolve()
    venv = Path(sys.prefix).resolve()  # may live inside the checkout (.venv): that part stays

    def in_checkout(path: str | os.PathLike[str]) -> bool:
        return _under(path, repo) and not _under(path, venv)

    sys.path[:] = [p for p in sys.path if p and not in_checkout(p)]
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    plugins = Path(os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"])

    from airflow import plugins_manager
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils.file import list_py_file_paths

    # What the dag-processor hands to its parsers: .airflowignore applied, no content heuristics.
    walked = sorted(Path(p).relative_to(dags).as_posix() for p in list_py_file_paths(dags, safe_mode=False))
    bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags, bundle_name="dags-folder", load_op_links=False)

    # What every scheduler, worker and api-server start does with the plugins folder.
    plugins_manager.ensure_plugins_loaded()
    plugin_errors = {str(k): str(v) for k, v in plugins_manager.get_import_errors().items()}

    import plg_bridge
    from plg_bridge.config import default_config_path, load_settings

    try:
        load_settings()
        settings_error = None
    except Exception as exc:
        settings_error = f"{type(exc).__name__}: {exc}"

    package_dir = Path(plg_bridge.__file__).resolve().parent
    files = {
        name: str(Path(module.__file__).resolve())
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None) and name not in ("__main__", "__mp_main__")  # this probe
    }
    Path(sys.argv[2]).write_text(
        json.dumps(
            {
                "walked": walked,
                "import_errors": {str(k): v for k, v in bag.import_errors.items()},
                "dag_ids": sorted(bag.dags),
                "plugin_errors": plugin_errors,
                # package files executed under another name (the plugin walk imports `config.py`
                # as `config`): what plugins/.airflowignore is there to prevent
                "strays": sorted(
                    n for n, f in files.items() if _under(f, package_dir) and not n.startswith("plg_bridge")
                ),
                "from_checkout": sorted(n for n, f in files.items() if in_checkout(f)),
                "plg_bridge_file": str(Path(plg_bridge.__file__).resolve()),
                "config_path": str(default_config_path()),
                "settings_error": settings_error,
                "sys_path": sys.path,
                "plugins_folder": str(plugins),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
