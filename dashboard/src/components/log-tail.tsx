/** A live tail of one deployment's build and replica logs, with a text filter. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { DeploymentView } from '../../../src/shared/views';
import { describeError } from '../api';
import { followLogs, type LiveState, type LogLine } from '../live';
import { LiveIndicator } from '../use-live';
import { ErrorMessage } from './badges';

/** How many lines the page keeps. */
const KEPT_LINES = 2000;

/** The logs panel. */
export function LogTail({ modelId, deployments }: { modelId: string; deployments: DeploymentView[] }) {
  const preferred = deployments.find((d) => d.is_production) ?? deployments[0];
  const [deploymentId, setDeploymentId] = useState(preferred?.id ?? '');
  const [lines, setLines] = useState<LogLine[]>([]);
  const [filter, setFilter] = useState('');
  const [state, setState] = useState<LiveState>('connecting');
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!deploymentId) return undefined;
    setLines([]);
    setError(null);
    return followLogs(modelId, deploymentId, {
      reset: (entries) => setLines(entries.slice(-KEPT_LINES)),
      append: (entries) => setLines((old) => [...old, ...entries].slice(-KEPT_LINES)),
      state: setState,
      refused: (failure) => setError(describeError(failure)),
    });
  }, [modelId, deploymentId]);

  // Keep the newest line in view, unless the reader scrolled up.
  useEffect(() => {
    const element = box.current;
    if (element && element.scrollHeight - element.scrollTop - element.clientHeight < 80) element.scrollTop = element.scrollHeight;
  }, [lines]);

  const needle = filter.toLowerCase();
  const shown = needle ? lines.filter((line) => line.message.toLowerCase().includes(needle) || line.source.toLowerCase().includes(needle)) : lines;
  return (
    <div class="logs">
      <div class="filters">
        <label>
          Deployment
          <select value={deploymentId} onChange={(e) => setDeploymentId(e.currentTarget.value)}>
            {deployments.map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Filter lines
          <input type="search" placeholder="text in the line or its source" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        </label>
        <LiveIndicator state={state} />
      </div>
      <ErrorMessage error={error} />
      <div class="log-box" ref={box} tabIndex={0} role="log" aria-label="Log lines" aria-live="off">
        {shown.length === 0 ? (
          <p class="muted">{lines.length === 0 ? 'No log lines yet.' : 'No line matches the filter.'}</p>
        ) : (
          shown.map((line, index) => (
            <div class="log-line" key={`${line.ts}-${index}`}>
              <span class="ts">{line.ts.slice(11, 23)}</span> <span class="source">{line.source}</span> <span class="message">{line.message}</span>
            </div>
          ))
        )}
      </div>
    </div>
  );
}
