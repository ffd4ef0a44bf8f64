/** Sign-in with an API key: checked against the API before it is kept for this tab. */
import { useState } from 'preact/hooks';
import { api, describeError } from '../api';
import { ErrorMessage } from '../components/badges';

/** The sign-in page. */
export function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn(key: string): void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [checking, setChecking] = useState(false);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    setChecking(true);
    setError(null);
    try {
      await api('GET', '/v1/models', undefined, key.trim());
      onSignedIn(key.trim());
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setChecking(false);
    }
  };

  return (
    <main class="sign-in">
      <h1>Gantry</h1>
      <p>
        Sign in with an API key. <code>npm start</code> prints the admin key the first time and keeps it in <code>.gantry/admin-api-key</code>.
      </p>
      {notice && <p class="notice">{notice}</p>}
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autoComplete="off" required value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        <button type="submit" disabled={checking || key.trim() === ''}>
          {checking ? 'Checking…' : 'Sign in'}
        </button>
        <ErrorMessage error={error} />
      </form>
    </main>
  );
}
