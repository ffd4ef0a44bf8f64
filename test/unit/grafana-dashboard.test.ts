/**
 * docs/grafana/gantry-dashboard.json: valid JSON in Grafana's import format, every expression
 * naming only metrics (and labels) the code registers, and a panel for each thing an operator
 * watches (docs/metrics.md).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { ApiMetrics } from '../../src/metrics/api-metrics';
import { collectProcessMetrics } from '../../src/metrics/exposition';
import { GatewayMetrics } from '../../src/metrics/gateway-metrics';
import { WorkerMetrics } from '../../src/metrics/worker-metrics';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import type { Store } from '../../src/store/store';

const DASHBOARD_FILE = path.join(PROJECT_ROOT, 'docs', 'grafana', 'gantry-dashboard.json');

interface Target {
  expr: string;
  refId: string;
  legendFormat?: string;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}

/** Every metric the three processes register, with its label names, as the exposition names them (a histogram's _bucket, _sum, _count). */
function registeredMetrics(): Map<string, Set<string>> {
  const processRegistry = new Registry();
  collectProcessMetrics(processRegistry, 'node');
  // The API's gauges read the store only when scraped; listing them reads nothing.
  const registries = [new GatewayMetrics().registry, new ApiMetrics({} as Store).registry, new WorkerMetrics().registry, processRegistry];
  const metrics = new Map<string, Set<string>>();
  for (const registry of registries) {
    for (const metric of registry.getMetricsAsArray()) {
      const { name, labelNames = [], type } = metric as unknown as { name: string; labelNames?: string[]; type: string };
      const labels = new Set([...labelNames, 'process', 'job', 'instance']);
      if (type === 'histogram') {
        metrics.set(`${name}_bucket`, new Set([...labels, 'le']));
        metrics.set(`${name}_sum`, labels);
        metrics.set(`${name}_count`, labels);
      } else {
        metrics.set(name, labels);
      }
    }
  }
  return metrics;
}

/** The metric selectors of a PromQL expression: each `gantry_…` name with the label names its braces match on. */
function selectors(expr: string): { metric: string; labels: string[] }[] {
  return [...expr.matchAll(/\b(gantry_[a-zA-Z0-9_]+)(?:\{([^}]*)\})?/g)].map((m) => ({
    metric: m[1]!,
    labels: [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!),
  }));
}

describe('the Grafana dashboard (docs/grafana/gantry-dashboard.json)', () => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8'));
  const panels: Panel[] = dashboard.panels;
  const graphs = panels.filter((p) => p.type !== 'row');
  const metrics = registeredMetrics();

  it('is a Grafana dashboard to import, asking for its Prometheus data source', () => {
    assert.equal(typeof dashboard.title, 'string');
    assert.equal(typeof dashboard.uid, 'string');
    assert.ok(Number.isInteger(dashboard.schemaVersion));
    assert.deepEqual(
      dashboard.__inputs.map((i: { name: string; pluginId: string }) => [i.name, i.pluginId]),
      [['DS_PROMETHEUS', 'prometheus']],
    );
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const panel of graphs) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's import placeholder, not a template
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, panel.title);
      assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has queries`);
      const refIds = panel.targets.map((t) => t.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${panel.title}: refIds are unique`);
      for (const key of ['h', 'w', 'x', 'y'] as const) assert.ok(Number.isInteger(panel.gridPos[key]), `${panel.title} gridPos.${key}`);
      assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title} fits the 24-column grid`);
    }
  });

  it('names, in every expression, only metrics the code registers and labels they have', () => {
    const expressions = [
      ...graphs.flatMap((p) => p.targets!.map((t) => ({ where: p.title, expr: t.expr }))),
      ...dashboard.templating.list.map((v: { name: string; definition: string }) => ({ where: `variable ${v.name}`, expr: v.definition })),
    ];
    let named = 0;
    for (const { where, expr } of expressions) {
      const found = selectors(expr);
      assert.ok(found.length > 0, `${where}: ${expr} names a gantry_ metric`);
      let depth = 0;
      for (const char of expr) {
        depth += char === '(' ? 1 : char === ')' ? -1 : 0;
        assert.ok(depth >= 0, `${where}: parentheses balance in ${expr}`);
      }
      assert.equal(depth, 0, `${where}: parentheses balance in ${expr}`);
      for (const { metric, labels } of found) {
        const known = metrics.get(metric);
        assert.ok(known, `${where}: ${metric} is not registered by the gateway, the API or the worker`);
        for (const label of labels) assert.ok(known.has(label), `${where}: ${metric} has no label ${label}`);
        named++;
      }
      for (const group of expr.matchAll(/\bby \(([^)]*)\)/g)) {
        const used = group[1]!.split(',').map((label: string) => label.trim());
        for (const label of used) {
          assert.ok(
            found.some(({ metric }) => metrics.get(metric)!.has(label)),
            `${where}: no metric of ${expr} has the label ${label} it groups by`,
          );
        }
      }
    }
    assert.ok(named >= graphs.length);
  });

  it('has a panel for each thing an operator watches', () => {
    const uses = (title: RegExp, ...names: string[]): void => {
      const panel = graphs.find((p) => title.test(p.title));
      assert.ok(panel, `a panel titled ${title}`);
      const exprs = panel.targets!.map((t) => t.expr).join('\n');
      for (const name of names) assert.ok(exprs.includes(name), `${panel.title} uses ${name}`);
    };
    uses(/^Request rate by deployment$/, 'gantry_gateway_requests_total');
    uses(/^Error rate/, 'gantry_gateway_requests_total', 'status_code=~"5.."');
    uses(/^Latency p50 and p99/, 'histogram_quantile(0.5,', 'histogram_quantile(0.99,', 'gantry_gateway_request_duration_seconds_bucket');
    uses(/^Requests in flight$/, 'gantry_gateway_requests_in_flight');
    uses(/^Replica wait/, 'gantry_gateway_replica_wait_seconds_bucket');
    uses(/^Wake-ups$/, 'gantry_gateway_wakeups_total');
    uses(/^Upstream errors and retries$/, 'gantry_gateway_upstream_errors_total', 'gantry_gateway_upstream_retries_total');
    uses(/^Replicas desired vs ready$/, 'gantry_deployment_replicas_desired', 'gantry_deployment_replicas_ready');
    uses(/^Promotion step per environment$/, 'gantry_promotion_step', 'gantry_promotion_total_steps');
    uses(/^Promotion traffic percent per environment$/, 'gantry_promotion_traffic_percent');
    uses(/^Async queue depth$/, 'gantry_async_requests', 'QUEUED');
    uses(/^Activity executions by type and outcome$/, 'gantry_worker_activity_executions_total');
    uses(/^Workflow task failures$/, 'gantry_worker_workflow_task_failures_total');
  });
});
