"""The Typer application and its command groups; the commands live in the modules beside it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="k8s-auto-fix",
    help="Find Kubernetes misconfigurations, propose minimal JSON Patches, verify them, write them back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
bench_app = typer.Typer(help="Benchmarks on a corpus: timings and agreement with kube-linter.", no_args_is_help=True)
llm_app = typer.Typer(help="Model endpoints: probe latency and sustainable concurrency.", no_args_is_help=True)
risk_app = typer.Typer(help="Risk of each finding: severity, exposure, EPSS, KEV, Trivy.", no_args_is_help=False, invoke_without_command=True)
feeds_app = typer.Typer(help="Threat feeds (EPSS, KEV).", no_args_is_help=True)
queue_app = typer.Typer(help="The persistent review queue (SQLite).", no_args_is_help=True)
cluster_app = typer.Typer(help="A throwaway local API server (etcd + kube-apiserver) for server-side dry runs.", no_args_is_help=True)

app.add_typer(bench_app, name="bench")
app.add_typer(llm_app, name="llm")
app.add_typer(risk_app, name="risk")
risk_app.add_typer(feeds_app, name="feeds")
app.add_typer(queue_app, name="queue")
app.add_typer(cluster_app, name="cluster")


def _print_version(value: bool) -> None:
    if value:
        from ..defaults import tool_version

        print(f"k8s-auto-fix {tool_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass
