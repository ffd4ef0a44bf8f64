/**
 * Replica-hours per deployment of one model over a chosen range, charted with uPlot (an hourly
 * series per deployment, deleted ones dashed and marked), with the same numbers in a table.
 * uPlot is loaded with the panel, so that nothing it does can keep the rest of the page from working.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import type { DeploymentUsage, UsageReport } from '../../../src/shared/views';
import { api, describeError } from '../api';
import { ErrorMessage } from './badges';

/** The ranges a user can pick. */
const RANGES = [
  { label: 'Last 24 hours', hours: 24 },
  { label: 'Last 7 days', hours: 7 * 24 },
  { label: 'Last 30 days', hours: 30 * 24 },
] as const;

/** Colours the series take in turn. */
const COLOURS = ['#2f81f7', '#d97706', '#16a34a', '#db2777', '#7c3aed', '#0891b2', '#dc2626', '#65a30d'];

/** A deployment's name as the chart labels it. */
function seriesLabel(deployment: DeploymentUsage): string {
  return deployment.deleted_at ? `${deployment.deployment_name} (deleted)` : deployment.deployment_name;
}

/** Hourly x values over the range, and each deployment's replica-hours per hour (0 when idle). */
function chartData(report: UsageReport, deployments: DeploymentUsage[]): uPlot.AlignedData {
  const first = Math.floor(Date.parse(report.start) / 3_600_000) * 3600;
  const last = Math.floor(Date.parse(report.end) / 3_600_000) * 3600;
  const xs: number[] = [];
  for (let t = first; t <= last; t += 3600) xs.push(t);
  const series = deployments.map((deployment) => {
    const byHour = new Map(deployment.hours.map((h) => [Date.parse(h.hour) / 1000, h.replica_seconds / 3600]));
    return xs.map((x) => byHour.get(x) ?? 0);
  });
  return [xs, ...series];
}

/** The usage panel. */
export function UsageChart({ modelId }: { modelId: string }) {
  const [hours, setHours] = useState<number>(24);
  const [report, setReport] = useState<UsageReport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const holder = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let cancelled = false;
    const load = async (): Promise<void> => {
      const end = new Date();
      const start = new Date(end.getTime() - hours * 3_600_000);
      try {
        const answer = await api<UsageReport>('GET', `/v1/usage?start=${encodeURIComponent(start.toISOString())}&end=${encodeURIComponent(end.toISOString())}`);
        if (!cancelled) {
          setReport(answer);
          setError(null);
        }
      } catch (failure) {
        if (!cancelled) setError(describeError(failure));
      }
    };
    void load();
    // Usage is written once a minute: refreshing it more often would show nothing new.
    const timer = setInterval(() => void load(), 60_000);
    return () => {
      cancelled = true;
      clearInterval(timer);
    };
  }, [hours]);

  const deployments = (report?.deployments ?? []).filter((d) => d.model_id === modelId);

  useEffect(() => {
    const element = holder.current;
    if (!element || !report || deployments.length === 0) return undefined;
    let dispose = (): void => undefined;
    let cancelled = false;
    void Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')])
      .then(([{ default: UPlot }]) => {
        if (cancelled) return;
        dispose = draw(UPlot, element);
      })
      .catch((failure) => setError(`the chart cannot be drawn: ${describeError(failure)}`));
    return () => {
      cancelled = true;
      dispose();
    };
  }, [report, modelId]);

  /** Draws the chart into the element and returns how to take it down. */
  const draw = (UPlot: typeof uPlot, element: HTMLDivElement): (() => void) => {
    const plot = new UPlot(
      {
        width: Math.max(320, element.clientWidth),
        height: 260,
        scales: { x: { time: true } },
        axes: [{ stroke: 'currentColor' }, { stroke: 'currentColor', label: 'replica-hours per hour', labelSize: 18 }],
        series: [
          {},
          ...deployments.map((deployment, i) => ({
            label: seriesLabel(deployment),
            stroke: COLOURS[i % COLOURS.length],
            width: 2,
            dash: deployment.deleted_at ? [6, 4] : undefined,
            value: (_u: uPlot, v: number | null) => (v === null ? '—' : v.toFixed(2)),
          })),
        ],
      },
      chartData(report!, deployments),
      element,
    );
    const resize = (): void => plot.setSize({ width: Math.max(320, element.clientWidth), height: 260 });
    addEventListener('resize', resize);
    return () => {
      removeEventListener('resize', resize);
      plot.destroy();
    };
  };

  return (
    <div class="usage">
      <label>
        Range
        <select value={hours} onChange={(e) => setHours(Number(e.currentTarget.value))}>
          {RANGES.map((range) => (
            <option key={range.hours} value={range.hours}>
              {range.label}
            </option>
          ))}
        </select>
      </label>
      <ErrorMessage error={error} />
      {report && deployments.length === 0 && <p class="muted">No usage recorded in this range yet (usage is written once a minute).</p>}
      <div class="chart" ref={holder} role="img" aria-label="Replica-hours per deployment, by hour" />
      {deployments.length > 0 && (
        <div class="table-wrap">
          <table class="usage-table">
            <caption class="visually-hidden">Usage per deployment over the range</caption>
            <thead>
              <tr>
                <th scope="col">Deployment</th>
                <th scope="col">Replica-hours</th>
                <th scope="col">Requests</th>
              </tr>
            </thead>
            <tbody>
              {deployments.map((deployment) => (
                <tr key={deployment.deployment_id} data-usage-deployment={deployment.deployment_name}>
                  <th scope="row">
                    {deployment.deployment_name} {deployment.deleted_at && <span class="badge still">deleted</span>}
                  </th>
                  <td>{(deployment.replica_seconds / 3600).toFixed(3)}</td>
                  <td>{deployment.requests}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
