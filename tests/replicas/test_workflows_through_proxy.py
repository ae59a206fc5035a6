"""The end-to-end workflow suite, unchanged, through every door into replicas behind a
round-robin proxy (fixtures in this package's ``conftest``). The killed-gateway test is left out:
``test_replicas`` kills the leader of three instead."""

from tests.e2e.test_workflows import (  # noqa: F401
    test_another_users_workflow_is_not_found,
    test_build_test_deploy_example_runs,
    test_delete_running_workflow_stops_its_steps,
    test_diamond_passes_outputs_along_every_edge,
    test_failed_step_skips_its_dependants_and_fails_the_workflow,
    test_invalid_workflows_are_400_naming_the_steps,
    test_step_logs_resource,
    test_wait_reports_completed_steps_as_progress,
)
