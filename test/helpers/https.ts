/** The status code of an HTTPS GET, with the TLS options the test gives (CA, client certificate). */
import { request, type RequestOptions } from 'node:https';

export function httpsGetStatus(options: RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}
