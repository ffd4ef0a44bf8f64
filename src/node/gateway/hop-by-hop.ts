/** The headers that belong to one connection (RFC 9110 §7.6.1 and the proxy ones), which a proxy never passes on. */
export const HOP_BY_HOP_HEADERS: readonly string[] = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
