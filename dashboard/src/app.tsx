/** The dashboard: sign-in, then the models page or a model's page. */
import { useState } from 'preact/hooks';
import { forgetKey, storedKey, storeKey } from './api';
import { ModelPage } from './pages/model';
import { ModelsPage } from './pages/models';
import { SignIn } from './pages/sign-in';
import { useRoute } from './route';

/** The whole page. */
export function App() {
  const [signedIn, setSignedIn] = useState(() => storedKey() !== null);
  const [notice, setNotice] = useState<string | null>(null);
  const route = useRoute();

  const signOut = (why?: string): void => {
    forgetKey();
    setNotice(why ?? null);
    setSignedIn(false);
  };

  if (!signedIn) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(key) => {
          storeKey(key);
          setNotice(null);
          setSignedIn(true);
        }}
      />
    );
  }
  const expired = (): void => signOut('Your API key is no longer valid: sign in again.');
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          Gantry
        </a>
        <nav aria-label="Main">
          <a href="#/">Models</a>
        </nav>
        <button type="button" class="quiet" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main>{route.page === 'model' ? <ModelPage key={route.modelId} modelId={route.modelId} onExpired={expired} /> : <ModelsPage onExpired={expired} />}</main>
    </>
  );
}
