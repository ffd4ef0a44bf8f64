/** The JSON body of an error Gantry answers outside the API's Express handlers (the API's also carries `details`). */
export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}
