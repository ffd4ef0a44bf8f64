/** Calls predict on a deployment with a JSON body and shows the answer (a stream as it arrives), its status and which deployment served it. */
import { useState } from 'preact/hooks';
import type { DeploymentView } from '../../../src/shared/views';
import { authHeaders, describeError } from '../api';
import { ErrorMessage } from './badges';

/** What the last call answered. */
interface Answer {
  status: number;
  servedBy: string | null;
  body: string;
  seconds: number;
}

/** Pretty-prints JSON, or leaves text as it is. */
function pretty(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** The predict playground. */
export function Playground({ modelId, deployments }: { modelId: string; deployments: DeploymentView[] }) {
  const servable = deployments.filter((d) => d.status !== 'INACTIVE');
  const [deploymentId, setDeploymentId] = useState((servable.find((d) => d.is_production) ?? servable[0])?.id ?? '');
  const [body, setBody] = useState('{"text": "hello"}');
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [sending, setSending] = useState(false);

  const send = async (event: Event): Promise<void> => {
    event.preventDefault();
    setError(null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (failure) {
      setError(`the body is not JSON: ${describeError(failure)}`);
      return;
    }
    setSending(true);
    const started = performance.now();
    try {
      const response = await fetch(`/v1/models/${modelId}/deployments/${deploymentId}/predict`, {
        method: 'POST',
        headers: { ...authHeaders(), 'Content-Type': 'application/json' },
        body: JSON.stringify(parsed),
      });
      // A streamed answer (a generator model) is shown as it arrives, chunk by chunk.
      const servedBy = response.headers.get('x-gantry-deployment-id');
      const decoder = new TextDecoder();
      const reader = response.headers.get('content-length') === null ? response.body?.getReader() : undefined;
      let text = '';
      while (reader) {
        const { done, value } = await reader.read();
        text += done ? decoder.decode() : decoder.decode(value, { stream: true });
        setAnswer({ status: response.status, servedBy, body: text, seconds: (performance.now() - started) / 1000 });
        if (done) break;
      }
      if (!reader) setAnswer({ status: response.status, servedBy, body: await response.text(), seconds: (performance.now() - started) / 1000 });
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setSending(false);
    }
  };

  const servedByName = answer?.servedBy ? (deployments.find((d) => d.id === answer.servedBy)?.name ?? answer.servedBy) : null;
  return (
    <form class="playground" onSubmit={send}>
      <label>
        Deployment
        <select value={deploymentId} onChange={(e) => setDeploymentId(e.currentTarget.value)}>
          {servable.map((d) => (
            <option key={d.id} value={d.id}>
              {d.name}
            </option>
          ))}
        </select>
      </label>
      <label class="wide">
        Request body (JSON)
        <textarea rows={4} value={body} onInput={(e) => setBody(e.currentTarget.value)} spellcheck={false} />
      </label>
      <button type="submit" disabled={sending || deploymentId === ''}>
        {sending ? 'Predicting…' : 'Predict'}
      </button>
      <ErrorMessage error={error} />
      {answer && (
        <div class="answer" aria-live="polite">
          <p>
            <strong data-testid="predict-status">{answer.status}</strong> in {answer.seconds.toFixed(2)} s
            {servedByName && (
              <>
                {' '}
                · served by <span data-testid="predict-served-by">{servedByName}</span> (<code>x-gantry-deployment-id: {answer.servedBy}</code>)
              </>
            )}
          </p>
          <pre data-testid="predict-answer">{pretty(answer.body)}</pre>
        </div>
      )}
    </form>
  );
}
